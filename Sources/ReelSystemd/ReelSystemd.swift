// ReelSystemd: see Package.swift for its role.
