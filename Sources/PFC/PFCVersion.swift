public enum PFCVersion { public static let format = 1 }
