"""Built-in and example handlers. Each module registers its handlers when imported:
list it under [handlers] modules in config.toml. Depends only on the public APIs of
`store` and `worker`."""
