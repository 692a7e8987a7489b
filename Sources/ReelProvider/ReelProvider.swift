// ReelProvider: see Package.swift for its role.
