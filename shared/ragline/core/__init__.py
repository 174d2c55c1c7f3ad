"""The foundation every other layer stands on: settings (`config`), the exception
hierarchy with stable codes (`errors`) and the JSON log line (`logs`). It imports nothing else
from ragline; anything that needs a database, a network call or a framework does not belong here."""
