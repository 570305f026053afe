/// An error caused by what the user gave the program (a flag, a data file, a spec, a model file),
/// as opposed to a failure of the program or the machine. Its description is one line naming the
/// flag, or the file and the place in it; the `host` executable reports these with exit code 2,
/// like a usage error, and nothing has been written.
public protocol InputError: Error, CustomStringConvertible {}
