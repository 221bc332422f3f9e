from darkconv.cli.main import main

main()
