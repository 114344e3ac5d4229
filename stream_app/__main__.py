"""`python -m stream_app` runs the console command."""

from stream_app.cli import main

main()
