"""The REST API ``/api/v1/``: the mini-program (members) and the stores' POS systems.

One view per operation (``<Entity><Action>Api``) with nested ``InputSerializer`` /
``OutputSerializer``; views validate, call a service or selector, and serialize. See
``members.apis.base`` for the conventions every endpoint shares and ``members.apis.errors`` for
the one error format.
"""
