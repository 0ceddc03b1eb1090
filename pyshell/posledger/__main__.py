from posledger.cli import main

main(prog_name="posledger")
