"""Sub-commands of the ``kubellm`` CLI, one module each (``register(subparsers)``)."""
