from ._impl.client import Client

VERSION = "1"
