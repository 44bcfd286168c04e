// The login form: the token goes to the daemon as JSON (the admin API refuses a plain form post),
// and the daemon answers with the session cookie. Nothing here stores the token.
const form = document.getElementById("login");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const token = document.getElementById("token").value;
  let answer;
  try {
    answer = await fetch("login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token }),
      credentials: "same-origin",
    });
  } catch (exc) {
    error.textContent = `The daemon did not answer: ${exc}`;
    error.hidden = false;
    return;
  }
  if (answer.ok) {
    window.location.reload();
    return;
  }
  const body = await answer.json().catch(() => ({}));
  error.textContent = body.error === "wrong token" ? "Wrong token." : body.error || `Refused (${answer.status}).`;
  error.hidden = false;
});
