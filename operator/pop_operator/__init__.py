"""edge-pop operator: turns EdgePop resources into POPs per region."""
