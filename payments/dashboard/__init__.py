"""The staff dashboard's payments pages: explorer, payment detail with
operator actions, live feed and webhooks. Interfaces only: they parse,
authorise through `accounts.roles`, call one selector or service, render."""
