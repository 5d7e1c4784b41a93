from genvault.cli import main

main()
