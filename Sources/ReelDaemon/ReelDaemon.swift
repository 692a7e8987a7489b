// ReelDaemon: see Package.swift for its role.
