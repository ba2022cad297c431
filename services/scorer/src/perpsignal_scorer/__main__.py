from perpsignal_scorer.main import main

main()
