import os


def main():
    os.system("trojan-sync --help")
