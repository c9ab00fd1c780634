"""What every layer shares and none owns: the keys a study's records are stored under, opening
an Optuna storage, masking secrets, files written whole, the command-line helpers and a
throwaway PostgreSQL server. It imports no other package of the project."""
