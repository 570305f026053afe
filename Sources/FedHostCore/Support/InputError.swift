/// An error caused by what the user gave (a flag, a spec, a data file): the command line
/// reports it as one line with exit status 2, and nothing has been written.
public protocol InputError: Error, CustomStringConvertible {}
