import sys

from pop.cli import main

# Guarded: child processes started with "spawn" (the libsql engine's sync process)
# import this module again, and must not start a second POP.
if __name__ == "__main__":
    sys.exit(main())
