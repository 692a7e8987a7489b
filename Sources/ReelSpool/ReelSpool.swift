// ReelSpool: see Package.swift for its role.
