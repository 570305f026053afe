/// An error caused by what the user gave the program (a data file, a spec, a model file), as
/// opposed to a failure of the program or the machine. Its description is one line naming the
/// file and the place in it; the `host` executable reports these with exit code 2, like a usage error.
public protocol InputError: Error, CustomStringConvertible {}
