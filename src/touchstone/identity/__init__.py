"""Organizations, branches, users, memberships, API keys, authentication and the audit log.

This package is also the template for every module: router / schemas / models / service /
repository / dependencies / exceptions.
"""
