"""The pipes console: a browser view of the daemon's pipes, served by the daemon at ``/ui``.

``routes`` is the aiohttp application (pages, static assets, login, the
composer's helpers); ``systems`` says which system each end of a pipe is, so
the map can join pipes that share a topic or a stream; ``forms`` turns a
connector's options model into form fields; ``composer`` checks and saves what
the composer wrote. The console speaks to the pipes only through the admin API
and the config, stage and connector modules the pipes use.
"""
