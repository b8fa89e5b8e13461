"""KAM Rules in Excel: the xlwings protocol (payload in, actions out), the desktop add-in module and its clients."""
