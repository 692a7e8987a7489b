// ReelMedia: see Package.swift for its role.
