"""Reference binding plugins shipped with netbind (one package per binding)."""
