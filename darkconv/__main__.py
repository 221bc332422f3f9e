from darkconv.cli import main

main()
