# Iaso's sign-in and account pages, English (the reference catalogue: every other language
# has the same message ids, and a missing one falls back to this file).
lang-name = English
site-name = Iaso
skip-to-content = Skip to content
language = Language

login-title = Sign in
login-email = Email
login-password = Password
login-submit = Sign in
login-refused = The email or password is incorrect.
login-locked = Too many attempts. Try again in { $minutes ->
    [one] one minute
   *[other] { $minutes } minutes
}.
login-disabled = This account is disabled. Contact your clinic.
login-busy = The server is busy. Try again in a moment.
login-signed-out = You have signed out.
login-expired = Your session ended. Sign in again.

mfa-title = Two-step verification
mfa-intro = Enter the 6-digit code from your authenticator app, or one of your backup codes.
mfa-code = Code
mfa-submit = Verify
mfa-refused = That code is not right, or it was already used.
mfa-cancel = Cancel and sign out

account-title = Account security
account-signed-in-as = Signed in as { $email }
account-sessions = Where you are signed in
account-session-this = This browser
account-session-started = Signed in { $when }
account-session-seen = Last active { $when }
account-session-from = From { $address }
account-session-revoke = Sign out this session
account-session-revoked = The session was signed out.
account-mfa = Two-step verification
account-mfa-on = On. Backup codes left: { $left }.
account-mfa-off = Off.
account-mfa-enable = Turn on two-step verification
account-mfa-disable = Turn off two-step verification
account-mfa-required = Your role requires two-step verification; it cannot be turned off.
account-password = Password
account-password-change = Change password
account-sign-out = Sign out
account-recent = Recent activity

enrol-title = Set up two-step verification
enrol-required = Your role requires two-step verification. Set it up to continue.
enrol-step-scan = Scan this QR code with an authenticator app, or enter the key by hand.
enrol-key = Key
enrol-step-confirm = Then enter the 6-digit code the app shows.
enrol-submit = Turn on
enrol-refused = That code is not right. Check the time on your phone and try the newest code.

codes-title = Your backup codes
codes-intro = Each code signs you in once if you lose your phone. Keep them somewhere safe: they are not shown again.
codes-done = I have saved them

disable-title = Turn off two-step verification
disable-intro = Enter your password to turn off two-step verification.
disable-submit = Turn off
disable-refused = The password is incorrect.
disable-done = Two-step verification is off.

password-title = Change password
password-current = Current password
password-new = New password
password-confirm = New password again
password-hint = At least 12 characters. A few unrelated words make a password that is long and easy to remember.
password-submit = Change password
password-wrong-current = The current password is incorrect.
password-mismatch = The two new passwords differ.
password-changed = Your password was changed and your other sessions were signed out.
password-too-short = Use at least { $min } characters.
password-too-long = Use at most { $max } characters.
password-too-common = This password appears in lists of leaked passwords. Choose another.
password-contains-email = Do not use your email address in your password.

error-title = Something went wrong
error-csrf = This form expired. Go back, reload the page and try again.
error-rate = Too many requests. Wait a moment and try again.
error-internal = The server could not complete this request. Try again later.
error-back = Back to sign in
