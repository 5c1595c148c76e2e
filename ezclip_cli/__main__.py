from ezclip_cli.cli.app import main

if __name__ == "__main__":  # spawned decoder workers import this module too
    main()
