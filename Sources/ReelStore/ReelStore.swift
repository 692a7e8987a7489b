// ReelStore: see Package.swift for its role.
