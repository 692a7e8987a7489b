// ReelControl: see Package.swift for its role.
