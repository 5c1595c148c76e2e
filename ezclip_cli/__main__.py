from ezclip_cli.cli import main

main()
