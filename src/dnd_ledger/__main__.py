from dnd_ledger.cli.main import main

main()
