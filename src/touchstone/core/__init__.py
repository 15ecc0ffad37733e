"""Platform building blocks shared by every module; imports no module."""
