"""How the pieces are started and found: local Ray or a joined cluster, Redis, named actors."""
