from perpsignal_notifier.main import main

main()
