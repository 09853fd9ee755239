from faceloop.cli.main import main

main()
