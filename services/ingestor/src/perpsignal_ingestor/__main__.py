"""`python -m perpsignal_ingestor`."""

from perpsignal_ingestor.main import main

main()
