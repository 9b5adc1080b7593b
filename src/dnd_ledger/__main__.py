from dnd_ledger.cli import main

main()
