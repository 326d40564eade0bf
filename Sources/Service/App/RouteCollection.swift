// RouteCollection: a resource's routes, registered by a controller that holds only what they use
// (hummingbird's `RouteCollection`), instead of one service type every route file extends.
import HTTP

/// A group of routes added to a router together.
protocol RouteCollection: Sendable {
    /// Adds the routes to `router`.
    func register(on router: inout Router)
}
