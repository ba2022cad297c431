"""`python -m perpsignal_gateway`."""

from perpsignal_gateway.main import main

main()
