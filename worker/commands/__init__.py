"""One module per `retryd` subcommand; worker/cli.py lists them."""
