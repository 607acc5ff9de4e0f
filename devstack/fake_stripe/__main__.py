"""`python -m devstack.fake_stripe`."""

from devstack.fake_stripe.app import main

main()
