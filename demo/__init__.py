"""The demo brand: ``seed_demo`` and the scenario it plays (see ``demo.brand``).

Not a domain app: it sits above ``campaigns`` and drives the services of all three apps, as a brand's
staff, tills and mini-program would, so that a fresh installation shows every part of the product.
"""
