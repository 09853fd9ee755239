from faceloop.cli.main import app

app()
