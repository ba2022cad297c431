from perpsignal_cli.main import main

main()
