"""torch._dynamo.config: a file's settings (`suppress_errors`, `cache_size_limit`, ...) are
kept as attributes; lthost compiles nothing, so none has an effect."""

suppress_errors = False
cache_size_limit = 8
