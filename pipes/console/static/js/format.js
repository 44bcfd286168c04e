// Numbers and states as the console shows them.
export function count(n) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en-US");
}

export function rate(perS) {
  if (perS === null || perS === undefined) return "–";
  if (perS === 0) return "0/s";
  if (perS < 10) return `${perS.toFixed(1)}/s`;
  if (perS < 10000) return `${Math.round(perS).toLocaleString("en-US")}/s`;
  return `${(perS / 1000).toFixed(1)}k/s`;
}

export const STATE_CLASS = {
  RUNNING: "ok",
  STARTING: "busy",
  STOPPING: "busy",
  STOPPED: "off",
  DEGRADED: "warn",
  FAILED: "bad",
};

export function stateClass(state) {
  return STATE_CLASS[state] || "off";
}

export const KIND_LABEL = {
  kafka_topic: "Kafka topic",
  kafka_topics: "Kafka topics",
  redis_stream: "Redis stream",
  redis_list: "Redis list",
  redis_channel: "Redis channel",
  redis_channel_pattern: "Redis channels",
  redis_keys: "Redis keys",
  file: "File",
  memory_channel: "Memory channel",
  stdout: "Standard output",
  python_function: "Python function",
  http_endpoint: "HTTP endpoint",
  webhook: "Webhook",
  connector: "Connector",
};

export function kindFamily(kind) {
  if (kind.startsWith("kafka")) return "kafka";
  if (kind.startsWith("redis")) return "redis";
  if (kind.startsWith("http") || kind === "webhook") return "http";
  return { file: "file", python_function: "python", memory_channel: "memory", stdout: "file" }[kind] || "other";
}
