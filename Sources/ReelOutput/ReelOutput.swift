// ReelOutput: see Package.swift for its role.
