from posledger.cli import run

run()
