# Páginas de inicio de sesión y de cuenta de Iaso, en español (el catálogo de referencia es
# en.ftl: cada idioma tiene los mismos identificadores, y uno que falte se toma de ese archivo).
lang-name = Español
site-name = Iaso
skip-to-content = Saltar al contenido
language = Idioma

login-title = Iniciar sesión
login-email = Correo electrónico
login-password = Contraseña
login-submit = Iniciar sesión
login-refused = El correo electrónico o la contraseña no son correctos.
login-locked = Demasiados intentos. Vuelva a intentarlo en { $minutes ->
    [one] un minuto
   *[other] { $minutes } minutos
}.
login-disabled = Esta cuenta está desactivada. Comuníquese con su clínica.
login-busy = El servidor está ocupado. Vuelva a intentarlo en un momento.
login-signed-out = Ha cerrado la sesión.
login-expired = Su sesión terminó. Vuelva a iniciar sesión.

mfa-title = Verificación en dos pasos
mfa-intro = Escriba el código de 6 dígitos de su aplicación de autenticación o uno de sus códigos de respaldo.
mfa-code = Código
mfa-submit = Verificar
mfa-refused = Ese código no es correcto o ya se utilizó.
mfa-cancel = Cancelar y cerrar sesión

account-title = Seguridad de la cuenta
account-signed-in-as = Sesión iniciada como { $email }
account-sessions = Dónde ha iniciado sesión
account-session-this = Este navegador
account-session-started = Inicio de sesión: { $when }
account-session-seen = Última actividad: { $when }
account-session-from = Desde { $address }
account-session-revoke = Cerrar esta sesión
account-session-revoked = Se cerró la sesión.
account-mfa = Verificación en dos pasos
account-mfa-on = Activada. Códigos de respaldo restantes: { $left }.
account-mfa-off = Desactivada.
account-mfa-enable = Activar la verificación en dos pasos
account-mfa-disable = Desactivar la verificación en dos pasos
account-mfa-required = Su rol exige la verificación en dos pasos; no se puede desactivar.
account-password = Contraseña
account-password-change = Cambiar contraseña
account-sign-out = Cerrar sesión
account-recent = Actividad reciente

enrol-title = Configurar la verificación en dos pasos
enrol-required = Su rol exige la verificación en dos pasos. Configúrela para continuar.
enrol-step-scan = Escanee este código QR con una aplicación de autenticación o escriba la clave manualmente.
enrol-key = Clave
enrol-step-confirm = Después, escriba el código de 6 dígitos que muestra la aplicación.
enrol-submit = Activar
enrol-refused = Ese código no es correcto. Compruebe la hora de su teléfono y pruebe con el código más reciente.

codes-title = Sus códigos de respaldo
codes-intro = Cada código le permite iniciar sesión una vez si pierde su teléfono. Guárdelos en un lugar seguro: no se volverán a mostrar.
codes-done = Ya los guardé

disable-title = Desactivar la verificación en dos pasos
disable-intro = Escriba su contraseña para desactivar la verificación en dos pasos.
disable-submit = Desactivar
disable-refused = La contraseña no es correcta.
disable-done = La verificación en dos pasos está desactivada.

password-title = Cambiar contraseña
password-current = Contraseña actual
password-new = Contraseña nueva
password-confirm = Repita la contraseña nueva
password-hint = Al menos 12 caracteres. Unas cuantas palabras sin relación entre sí forman una contraseña larga y fácil de recordar.
password-submit = Cambiar contraseña
password-wrong-current = La contraseña actual no es correcta.
password-mismatch = Las dos contraseñas nuevas no coinciden.
password-changed = Se cambió su contraseña y se cerraron sus demás sesiones.
password-too-short = Use al menos { $min } caracteres.
password-too-long = Use como máximo { $max } caracteres.
password-too-common = Esta contraseña aparece en listas de contraseñas filtradas. Elija otra.
password-contains-email = No use su dirección de correo electrónico en la contraseña.

error-title = Algo salió mal
error-csrf = Este formulario caducó. Vuelva atrás, recargue la página e inténtelo de nuevo.
error-rate = Demasiadas solicitudes. Espere un momento y vuelva a intentarlo.
error-internal = El servidor no pudo completar esta solicitud. Inténtelo de nuevo más tarde.
error-back = Volver al inicio de sesión
