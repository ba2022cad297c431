"""`python -m perpsignal_judge`."""

from perpsignal_judge.main import main

main()
