from perpsignal_outcomes.main import main

main()
