"""GraphQL subscriptions: each committed change of an entity, from the event stream, filtered and rendered."""
