// ReelHTTPServer: see Package.swift for its role.
